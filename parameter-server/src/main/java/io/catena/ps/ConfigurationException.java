package io.catena.ps;

/** A setting is missing or wrong; the message names the property, what was expected, what was found and what to do. */
public class ConfigurationException extends ParameterServerException {
    private final String property;

    public ConfigurationException(String property, String expected, Object found, String todo) {
        this(property, expected, found, todo, null);
    }

    public ConfigurationException(String property, String expected, Object found, String todo, Throwable cause) {
        super("invalid setting " + property + ": expected " + expected + ", found " + (found == null ? "nothing" : "'" + found + "'")
                + "; " + todo, cause);
        this.property = property;
    }

    /** The property at fault. */
    public String property() {
        return property;
    }
}
