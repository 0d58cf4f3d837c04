"""The daemon's HTML pages (issue 15's status UI): `pages` for the routes and their endpoints (on `base`),
`session` for sign-in, `templating` for rendering and URLs, `charts` for the SVG charts,
`log_filter` for the provisioning log's query and `data` for what the pages read."""
