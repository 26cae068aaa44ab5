"""One Pulumi ComponentResource per module; environment.TeamEnvironment composes them."""
