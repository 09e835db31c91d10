"""Follow-up sequences: timing (pure, in ``agent_service.domain``), rows and the periodic scheduler."""
