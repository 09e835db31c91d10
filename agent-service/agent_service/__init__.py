"""Parley agent service: speaks sales -- contacts, moderator, sales agent, follow-ups, managers' API."""
