import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Feature events as a Java application writes them with Apache Avro's own library:
 * GenericData records, encoded by BinaryMessageEncoder (the Avro single-object encoding,
 * written by GenericDatumWriter, which picks a union branch by the value's Java class),
 * produced with kafka-clients' default partitioner (murmur2 of the key).
 *
 * <p>Usage: AvroFeatureProducer BOOTSTRAP TOPIC SCHEMA_FILE EVENTS_FILE
 *
 * <p>EVENTS_FILE: one event a line, tab-separated: event_id, model, event_time_ms, then
 * features as NAME=TYPE:VALUE, TYPE one of L (java.lang.Long), I (java.lang.Integer), D
 * (Double), B (Boolean), S (String), N (null). Prints "sent ID" or "refused ID: why" (the
 * writer refuses a value no branch of the union takes, e.g. an Integer).
 */
public final class AvroFeatureProducer {
  private AvroFeatureProducer() {}

  static Object value(String typed) {
    String type = typed.substring(0, 1);
    String text = typed.substring(2);
    switch (type) {
      case "L": return Long.valueOf(text);
      case "I": return Integer.valueOf(text);
      case "D": return Double.valueOf(text);
      case "B": return Boolean.valueOf(text);
      case "S": return text;
      case "N": return null;
      default: throw new IllegalArgumentException("unknown type " + type);
    }
  }

  public static void main(String[] args) throws Exception {
    Schema schema = new Schema.Parser().parse(new File(args[2]));
    BinaryMessageEncoder<GenericRecord> encoder =
        new BinaryMessageEncoder<>(GenericData.get(), schema);
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("acks", "all");
    try (KafkaProducer<String, byte[]> producer =
        new KafkaProducer<>(props, new StringSerializer(), new ByteArraySerializer())) {
      for (String line : Files.readAllLines(Paths.get(args[3]))) {
        String[] cols = line.split("\t");
        GenericRecord event = new GenericData.Record(schema);
        event.put("event_id", cols[0]);
        event.put("model", cols[1]);
        event.put("event_time_ms", Long.valueOf(cols[2]));
        Map<String, Object> features = new HashMap<>();
        for (int i = 3; i < cols.length; i++) {
          String[] kv = cols[i].split("=", 2);
          features.put(kv[0], value(kv[1]));
        }
        event.put("features", features);
        event.put("segment", new HashMap<String, String>());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
          encoder.encode(event, out);
        } catch (AvroRuntimeException e) {
          System.out.println("refused " + cols[0] + ": " + e.getMessage());
          continue;
        }
        producer.send(new ProducerRecord<>(args[1], cols[0], out.toByteArray())).get();
        System.out.println("sent " + cols[0]);
      }
    }
  }
}
