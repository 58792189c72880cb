"""The HTTP side: what the simulator answers, one module per family of routes.

``app`` composes them: ``tokens`` (the tenant token endpoint), ``v1`` and ``v2`` (the task
endpoints, behind ``gateway``), ``control`` (the ``/_sim`` routes); ``answers`` is what they
share, ``paging`` / ``v2_paging`` the page tokens, ``bad_answers`` the answers a client must
survive.  The world is read only through ``World``'s methods; nothing in ``world`` imports this.
"""
