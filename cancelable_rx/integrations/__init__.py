"""Optional integrations of cancelable_rx with other systems, each in its own subpackage,
imported explicitly (never from ``cancelable_rx`` itself) and installed with its extra."""
