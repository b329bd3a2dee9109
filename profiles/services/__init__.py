from .refresh import profiles_refresh
from .resolution import records_resolve

__all__ = ["profiles_refresh", "records_resolve"]
