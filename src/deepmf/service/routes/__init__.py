"""One APIRouter per resource: health, users, items, predictions (pairs and new users)."""
