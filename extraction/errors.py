"""The error a rules document raises when it cannot be used."""


class RulesError(ValueError):
    """A rules document that cannot be used; the message names the rule and key at fault."""
