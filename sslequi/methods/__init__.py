"""Methods: one file per method, each registered with ``@register_method``."""
