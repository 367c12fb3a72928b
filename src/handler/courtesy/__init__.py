"""Courtesy: welcomes new followers of an X account, once each."""
