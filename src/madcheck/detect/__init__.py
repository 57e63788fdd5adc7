"""Rolling median/MAD detection: plain Python objects, testable without any engine."""
