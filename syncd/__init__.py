"""syncd: keeps Dataverse SystemUser tables in step with an Entra directory."""

__version__ = "0.1.0"
