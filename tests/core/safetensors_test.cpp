// The safetensors reader/writer: round trips per dtype, metadata, alignment, a
// hand-built file, half-precision bit patterns, and every corrupt-file case.
#include "core/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "temp_dir.h"

namespace linpar {

using testing::TempDir;

namespace {

void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

std::string floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
}

void expect_refused(const std::string& path, const std::string& mention) {
  try {
    SafetensorsReader reader(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Safetensors, RoundTripPerDtypeWithMetadataAndAlignment) {
  TempDir dir;
  Tensor a = Tensor::from_vector<float>({2, 3}, {1, -2, 3.5f, 1e-3f, 0, 7});
  Tensor b = Tensor::from_vector<double>({2}, {1.0 / 3, -1e200});
  SafetensorsWriter writer;
  writer.add("model.embed_tokens.weight", a, "F32");
  writer.add("b64", b, "F64");
  writer.add("b16", a, "BF16");
  writer.add("h16", a, "F16");
  writer.set_metadata("format", "pt");
  writer.write(dir / "m.safetensors");
  EXPECT_FALSE(std::filesystem::exists(dir / "m.safetensors.tmp"));

  std::ifstream in(dir / "m.safetensors", std::ios::binary);
  uint64_t header_bytes = 0;
  in.read(reinterpret_cast<char*>(&header_bytes), 8);
  EXPECT_EQ((8 + header_bytes) % 8, 0u);

  SafetensorsReader reader(dir / "m.safetensors");
  EXPECT_EQ(reader.metadata().at("format"), "pt");
  EXPECT_EQ(reader.read("model.embed_tokens.weight", DType::F32).to_vector<float>(),
            a.to_vector<float>());
  EXPECT_EQ(reader.read("b64", DType::F64).to_vector<double>(), b.to_vector<double>());
  EXPECT_EQ(reader.entry("b16").dtype, "BF16");
  EXPECT_EQ(reader.read("b16", DType::F32).to_vector<float>(),
            a.to(DType::BF16).to(DType::F32).to_vector<float>());
  std::vector<float> h = reader.read("h16", DType::F32).to_vector<float>();
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[2], 3.5f);
  EXPECT_NEAR(h[3], 1e-3f, 1e-6f);
  EXPECT_EQ(reader.entry("h16").shape, (Shape{2, 3}));
  EXPECT_THROW(reader.entry("nothing"), UserError);
}

TEST(Safetensors, HalfPrecisionBitPatterns) {
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(half_to_float(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
  EXPECT_TRUE(std::isinf(half_to_float(0x7c00)));
  for (uint32_t bits = 0; bits < 0x7c00; ++bits) {  // every finite positive half round-trips
    ASSERT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(bits))), bits);
  }
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie rounds to even
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);
}

TEST(Safetensors, HandBuiltFileWithUnsortedKeysAndPadding) {
  TempDir dir;
  const std::string header =
      R"({"zeta": {"shape": [2], "data_offsets": [8, 16], "dtype": "F32"},  "__metadata__": {"k": "v"},)"
      R"( "alpha":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}    )";
  write_raw(dir / "h.safetensors", header, floats({1, 2, 3, 4}));
  SafetensorsReader reader(dir / "h.safetensors");
  EXPECT_EQ(reader.read("alpha", DType::F32).to_vector<float>(), (std::vector<float>{1, 2}));
  EXPECT_EQ(reader.read("zeta", DType::F64).to_vector<double>(), (std::vector<double>{3, 4}));
  EXPECT_EQ(reader.entries().front().name, "alpha");  // buffer order
  EXPECT_EQ(reader.metadata().at("k"), "v");
}

TEST(Safetensors, CorruptFilesAreRefusedWithTheReason) {
  TempDir dir;
  std::ofstream(dir / "short.safetensors") << "abc";
  expect_refused(dir / "short.safetensors", "too short");
  write_raw(dir / "long.safetensors", std::string(), std::string());
  {
    std::ofstream out(dir / "huge.safetensors", std::ios::binary);
    const uint64_t n = 1ull << 40;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{}";
  }
  expect_refused(dir / "huge.safetensors", "header length");
  write_raw(dir / "json.safetensors", "{not json", "");
  expect_refused(dir / "json.safetensors", "not a JSON object");
  write_raw(dir / "fields.safetensors", R"({"a": {"dtype": "F32", "shape": [1]}})", floats({1}));
  expect_refused(dir / "fields.safetensors", "data_offsets");
  write_raw(dir / "dtype.safetensors",
            R"({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}})", floats({1}));
  expect_refused(dir / "dtype.safetensors", "unknown dtype Q7");
  write_raw(dir / "size.safetensors",
            R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", floats({1}));
  expect_refused(dir / "size.safetensors", "data_offsets [0, 4]");
  write_raw(dir / "trunc.safetensors",
            R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", floats({1}));
  expect_refused(dir / "trunc.safetensors", "truncated");
  write_raw(
      dir / "overlap.safetensors",
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
      floats({1, 2, 3}));
  expect_refused(dir / "overlap.safetensors", "overlap");
}

TEST(Safetensors, FailedWriteLeavesNoFileAndDuplicatesAreRefused) {
  TempDir dir;
  SafetensorsWriter writer;
  writer.add("a", Tensor::from_vector<float>({1}, {1}), "F32");
  EXPECT_THROW(writer.add("a", Tensor::from_vector<float>({1}, {1}), "F32"), UserError);
  const std::string target = dir / "no/such/dir/m.safetensors";
  EXPECT_THROW(writer.write(target), UserError);
  EXPECT_FALSE(std::filesystem::exists(target));
}

}  // namespace linpar
