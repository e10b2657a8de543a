"""Single logout: OpenID Back-Channel Logout 1.0 and Front-Channel Logout 1.0.

``participants`` finds the apps that took part in a browser session, ``backchannel`` queues
and sends signed logout tokens (an outbox written with the logout, a worker that retries),
``frontchannel`` builds the iframes of the logged-out page, ``worker`` runs the deliveries in
the app's lifespan and ``sign_out`` ends every session of an official for administrators.
"""
