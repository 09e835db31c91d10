"""Parley gateway: speaks WhatsApp, publishes to and consumes from RabbitMQ."""
