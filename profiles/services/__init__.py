from .conflicts import conflict_merge, conflicts_close
from .events import events_resolve
from .refresh import profiles_refresh
from .resolution import records_resolve

__all__ = ["conflict_merge", "conflicts_close", "events_resolve", "profiles_refresh", "records_resolve"]
