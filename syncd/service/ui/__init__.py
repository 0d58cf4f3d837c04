"""The daemon's HTML pages (issue 15's status UI): see `syncd.service.ui.pages` for the routes,
`session` for sign-in, `charts` for the SVG charts and `data` for what the pages read."""
