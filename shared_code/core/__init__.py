"""Pure rules: settings, errors, time, names, messages and change detection (no storage calls)."""
