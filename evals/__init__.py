"""Parley's evaluation harness (``make eval``): how well the agent classifies senders and answers.

It runs the labelled sets in ``evals/sets/`` through the agent's own turn logic (the
:class:`~agent_service.sales.SalesAgent` with the sample businesses' files and documents, the
moderator, the grounding guard and the call-booking rules) on the offline engine, or on Gemini
when ``GEMINI_API_KEY`` is set, and prints accuracy tables. ``tests/agent/test_eval.py`` runs
it on the offline engine and holds the targets. docs/agent.md ("Measuring the agent") explains
the sets and the figures.
"""
