"""Fields of the avatar: canonical SDF (body prior + learned residual) and colour."""
