"""Code mode (lash's RLM protocol) at run time: the sandbox kernel, the bridge from its cells
back to the host, the session's shared data and the cells' part of the turn driver. The
rules live in ``lash_nb._core.code_mode``."""
