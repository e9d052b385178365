package io.catena.ps;

/**
 * The server this client talks to is gone (its Aeron connection dropped and did not come back within
 * {@link Configuration#DEAD_SERVER_PROP}): unlike a timeout, waiting longer does not help. Not a
 * {@link ParameterServerTimeoutException}, so loops that retry timeouts stop at once.
 */
public class ParameterServerGoneException extends ParameterServerException {
    public ParameterServerGoneException(String message) {
        super(message);
    }
}
