"""resonate_web.client: the routes over HTTP."""
