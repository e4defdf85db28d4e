"""gitbot: a GitOps commit bot that edits cluster-config repositories byte for byte."""

__version__ = "0.1.0"
