package io.catena.model.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Map;

/**
 * The one writer of HuggingFace {@code tokenizer.json} text for a byte-level BPE (the GPT-2 layout: ByteLevel
 * pre-tokenizer, BPE model, ByteLevel decoder): data-pipeline's trained tokenizers and the byte tokenizer of an export
 * both go through it, so the two files have one shape. Same input, same bytes.
 */
public final class HuggingFaceTokenizerJson {
    private static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** A special token (never produced by merges). */
    public record Special(int id, String content) {
    }

    private HuggingFaceTokenizerJson() {
    }

    /**
     * @param vocab  every non-special token (in byte-level characters) and its id, in the order to write
     * @param merges the merge rules in rank order, each "left right"
     */
    public static String write(List<Special> specials, Map<String, Integer> vocab, List<String> merges) {
        ObjectNode root = MAPPER.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        for (Special s : specials) {
            ObjectNode a = added.addObject();
            a.put("id", s.id());
            a.put("content", s.content());
            a.put("single_word", false);
            a.put("lstrip", false);
            a.put("rstrip", false);
            a.put("normalized", false);
            a.put("special", true);
        }
        root.putNull("normalizer");
        for (String part : new String[] {"pre_tokenizer", "post_processor", "decoder"}) {
            ObjectNode n = root.putObject(part);
            n.put("type", "ByteLevel");
            n.put("add_prefix_space", !part.equals("pre_tokenizer"));
            n.put("trim_offsets", !part.equals("post_processor"));
            n.put("use_regex", true);
        }
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        ObjectNode v = model.putObject("vocab");
        vocab.forEach(v::put);
        ArrayNode m = model.putArray("merges");
        merges.forEach(m::add);
        try {
            return MAPPER.writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
