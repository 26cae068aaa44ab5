"""The embedded sandbox: the unchanged program under Pulumi mocks, materialised in a local moto server."""
