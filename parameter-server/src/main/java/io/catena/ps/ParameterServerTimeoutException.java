package io.catena.ps;

/** A blocking call ran out of time; the message says what it waited for and what to check. */
public class ParameterServerTimeoutException extends ParameterServerException {
    public ParameterServerTimeoutException(String message) {
        super(message);
    }
}
