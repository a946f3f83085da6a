"""Accounts feature: sign-up, login, profiles, admin user management."""
