"""Talking to the LiveKit SFU: names, access tokens and rooms."""
