"""What every part of the service stands on: configuration, the database, security (tokens,
passwords, the active-user cache), metrics, the body-size limit, the durable checkpointer and
logging."""
