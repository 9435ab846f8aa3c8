"""MatrixRTC Authorization Service: Matrix OpenID tokens in, LiveKit access tokens out."""

__version__ = "0.1.0"
