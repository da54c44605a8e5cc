"""The localizer at run time: settings, prior tracking, the localization session, inference
backends and `Localizer` itself (used by the node, replay and the user API)."""
