"""The auth service: subscribers, playback tokens, signing keys with rotation, revocations."""
