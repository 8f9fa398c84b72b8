"""resonate_web.testing: the virtual clock users test their durable code with."""
