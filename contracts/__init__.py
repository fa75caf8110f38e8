"""What the pipeline and the service agree on: the pin, the bundle digest, the signature.

Both sides import this package and nothing of each other, so the service image never
carries training code and the pipeline never imports the API.
"""
