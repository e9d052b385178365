package io.catena.ps;

/** Base of the parameter server's errors. */
public class ParameterServerException extends RuntimeException {
    public ParameterServerException(String message) {
        super(message);
    }

    public ParameterServerException(String message, Throwable cause) {
        super(message, cause);
    }
}
