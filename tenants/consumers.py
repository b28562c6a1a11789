from channels.generic.websocket import WebsocketConsumer

# Private close code: the path names no websocket service.
CLOSE_NO_SUCH_SERVICE = 4404


class NoSuchServiceConsumer(WebsocketConsumer):
    """Refuses a handshake to a path that no consumer serves, without an error."""

    def connect(self) -> None:
        self.close(code=CLOSE_NO_SUCH_SERVICE)
