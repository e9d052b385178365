package io.catena.model;

/**
 * A failure that running the same work again would only repeat: a non-finite gradient or a diverged loss
 * (the same data and parameters give the same numbers), a full disk. Distributed runs fail once with it
 * instead of rerunning the stage. The marker travels inside the message, because Spark hands the driver a
 * task's failure as text.
 */
public class NotRetryableException extends IllegalStateException {
    public static final String MARKER = "[not retryable] ";

    public NotRetryableException(String message) {
        super(MARKER + message);
    }

    public NotRetryableException(String message, Throwable cause) {
        super(MARKER + message, cause);
    }

    /** True when a failure's text (a Spark task failure, a server's rejection) carries the marker. */
    public static boolean marks(String message) {
        return message != null && message.contains(MARKER.trim());
    }
}
