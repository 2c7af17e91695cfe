"""The base of every error a stage reports to its user as a message rather than a traceback."""


class PipelineError(Exception):
    """Bad input, a missing file or a wrong param: the message names it and says what to do."""
