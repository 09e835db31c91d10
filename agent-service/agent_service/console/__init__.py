"""The managers' console: server-rendered pages under ``/console`` (see ``routes.install`` and docs/console.md)."""
