"""The Parley demo: both services on the sandbox provider and a terminal chat (``make demo``)."""
