from .conflicts import conflicts_close
from .refresh import profiles_refresh
from .resolution import records_resolve

__all__ = ["conflicts_close", "profiles_refresh", "records_resolve"]
