"""Scheduled calls: booking inside working hours, proposing slots otherwise."""
