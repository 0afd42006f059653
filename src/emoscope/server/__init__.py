"""The web app: JSON API + page (``emoscope serve``). Sits above mood and recognizer; nothing below imports it."""

from .app import ServerSettings, SettingsError, create_app, generate_token

__all__ = ["ServerSettings", "SettingsError", "create_app", "generate_token"]
