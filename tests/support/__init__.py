"""Helpers the tests share: real servers (one, a cluster, Redis), a fake Hub, small GGUFs, the
grammar cases. Not tests themselves; pytest collects nothing here."""
