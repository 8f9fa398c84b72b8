"""The apps the adapter benchmark serves: each framework's resonate_web routes, and
the same work written by hand in that framework on the raw SDK (the baseline)."""
