"""Talking to Matrix homeservers: server names, discovery, federation, OpenID."""
