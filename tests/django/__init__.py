"""The Django app: settings, dispatch and its outbox, django.tasks, the admin, the login hook."""
