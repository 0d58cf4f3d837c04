"""The CLI's command groups, one module each; `syncd.cli` mounts them."""
