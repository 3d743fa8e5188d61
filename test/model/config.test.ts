import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, isMoeLayer, loadConfig, parseConfig } from '../../src/model/config.js';
import { tinyConfigJson } from '../../src/model/random-model.js';

const fixtures = fileURLToPath(new URL('../../../shared/fixtures/', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsa-config-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const fixtureJson = (name: string): Record<string, unknown> =>
  JSON.parse(fs.readFileSync(path.join(fixtures, name, 'config.json'), 'utf8')) as Record<string, unknown>;

/** Asserts that `fn` throws a ConfigError whose message names `file` and matches every phrase. */
function rejects(fn: () => unknown, file: string, ...phrases: RegExp[]): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.name, 'ConfigError');
  assert.equal(caught.file, file);
  assert.ok(caught.message.startsWith(`${file}: `), caught.message);
  for (const p of phrases) assert.match(caught.message, p);
  return caught;
}

/** A valid config with `key` removed. */
function without(key: string, base = tinyConfigJson()): Record<string, unknown> {
  const c = { ...base };
  delete c[key];
  return c;
}

/** Writes DIR/config.json with `text` and returns DIR. */
function dirWith(name: string, text: string | null): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  if (text !== null) fs.writeFileSync(path.join(dir, 'config.json'), text);
  return dir;
}

test('the tiny-bf16 fixture config', () => {
  const c = loadConfig(path.join(fixtures, 'tiny-bf16'));
  assert.equal(c.vocabSize, 1024);
  assert.equal(c.hiddenSize, 256);
  assert.equal(c.intermediateSize, 512);
  assert.equal(c.moeIntermediateSize, 128);
  assert.equal(c.numLayers, 3);
  assert.equal(c.firstKDenseReplace, 1);
  assert.equal(c.numHeads, 8);
  assert.equal(c.nRoutedExperts, 8);
  assert.equal(c.nSharedExperts, 1);
  assert.equal(c.numExpertsPerTok, 2);
  assert.equal(c.nGroup, 4);
  assert.equal(c.topkGroup, 2);
  assert.equal(c.routedScalingFactor, 2.5);
  assert.equal(c.scoringFunc, 'sigmoid');
  assert.equal(c.topkMethod, 'noaux_tc');
  assert.equal(c.normTopkProb, true);
  assert.equal(c.qLoraRank, 128);
  assert.equal(c.kvLoraRank, 128);
  assert.equal(c.qkNopeHeadDim, 64);
  assert.equal(c.qkRopeHeadDim, 32);
  assert.equal(c.vHeadDim, 64);
  assert.equal(c.ropeTheta, 10000);
  assert.deepEqual(c.yarn, { factor: 4, originalMaxPositionEmbeddings: 1024, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1 });
  assert.equal(c.maxPositionEmbeddings, 4096);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.indexNHeads, 16);
  assert.equal(c.indexHeadDim, 128);
  assert.equal(c.indexTopk, 64);
  assert.equal(c.indexerRopeInterleave, false);
  assert.equal(c.quant, null);
  assert.equal(c.indexerScaleFormat, 'none');
  assert.equal(c.bosTokenId, 0);
  assert.equal(c.eosTokenId, 1);
  assert.equal(isMoeLayer(c, 0), false);
  assert.equal(isMoeLayer(c, 1), true);
  assert.equal(isMoeLayer(c, 2), true);
});

test('the tiny-fp8 fixture config', () => {
  const c = loadConfig(path.join(fixtures, 'tiny-fp8'));
  assert.equal(c.vocabSize, 512);
  assert.equal(c.hiddenSize, 256);
  assert.equal(c.intermediateSize, 384);
  assert.equal(c.nGroup, 2);
  assert.equal(c.topkGroup, 1);
  assert.equal(c.qkNopeHeadDim, 32);
  assert.equal(c.vHeadDim, 32);
  assert.equal(c.maxPositionEmbeddings, 2048);
  assert.equal(c.indexTopk, 48);
  assert.ok(c.yarn !== null);
  assert.equal(c.yarn.factor, 4);
  assert.equal(c.yarn.originalMaxPositionEmbeddings, 512);
  assert.deepEqual(c.quant, { weightBlockSize: [128, 128], scaleFormat: 'ue8m0' });
  assert.equal(c.indexerRopeInterleave, false);
  assert.equal(c.indexerScaleFormat, 'ue8m0');
});

test('parseConfig of the fixture objects equals loadConfig', () => {
  for (const name of ['tiny-bf16', 'tiny-fp8']) {
    assert.deepEqual(parseConfig(fixtureJson(name)), loadConfig(path.join(fixtures, name)));
  }
});

test('indexer_rope_interleave true is honoured', () => {
  assert.equal(parseConfig({ ...fixtureJson('tiny-bf16'), indexer_rope_interleave: true }).indexerRopeInterleave, true);
  assert.equal(parseConfig({ ...fixtureJson('tiny-bf16'), indexer_rope_interleave: false }).indexerRopeInterleave, false);
});

test('fp8 without scale_fmt: activation scales are plain amax/448', () => {
  const q = { quant_method: 'fp8', fmt: 'e4m3', weight_block_size: [128, 128] };
  const c = parseConfig({ ...fixtureJson('tiny-bf16'), quantization_config: q });
  assert.deepEqual(c.quant, { weightBlockSize: [128, 128], scaleFormat: 'none' });
  assert.equal(c.indexerScaleFormat, 'none');
});

test('rope_scaling absent or null: plain RoPE', () => {
  assert.equal(parseConfig(without('rope_scaling')).yarn, null);
  assert.equal(parseConfig({ ...tinyConfigJson(), rope_scaling: null }).yarn, null);
});

test('model_type: wrong or missing', () => {
  rejects(() => parseConfig(tinyConfigJson({ model_type: 'llama' }), 'x/config.json'), 'x/config.json', /model_type/, /'llama'/, /deepseek_v32/);
  rejects(() => parseConfig(without('model_type')), 'config.json', /model_type is missing/, /deepseek_v32/);
  // The V3 (non-sparse) model type is not this model either.
  rejects(() => parseConfig(tinyConfigJson({ model_type: 'deepseek_v3' })), 'config.json', /model_type/, /deepseek_v32/);
});

test('a missing required key is named', () => {
  for (const key of ['index_topk', 'vocab_size', 'hidden_size', 'q_lora_rank', 'index_head_dim', 'max_position_embeddings']) {
    const e = rejects(() => parseConfig(without(key), 'm/config.json'), 'm/config.json', new RegExp(`${key}: missing`));
    assert.deepEqual(e.problems, [`${key}: missing (required)`]);
  }
});

test('a key of the wrong type is named', () => {
  rejects(() => parseConfig(tinyConfigJson({ hidden_size: '256' })), 'config.json', /hidden_size/, /number/, /string/);
  rejects(() => parseConfig(tinyConfigJson({ num_hidden_layers: 2.5 })), 'config.json', /num_hidden_layers/);
  rejects(() => parseConfig(tinyConfigJson({ vocab_size: 0 })), 'config.json', /vocab_size/);
  rejects(() => parseConfig(tinyConfigJson({ norm_topk_prob: 'yes' })), 'config.json', /norm_topk_prob/);
  rejects(() => parseConfig(tinyConfigJson({ scoring_func: 'relu' })), 'config.json', /scoring_func/);
  rejects(() => parseConfig(tinyConfigJson({ rope_scaling: { type: 'yarn', factor: 'four', original_max_position_embeddings: 1024 } })), 'config.json', /rope_scaling\.factor/);
  rejects(() => parseConfig(tinyConfigJson({ quantization_config: { quant_method: 'fp8', weight_block_size: [128] } })), 'config.json', /quantization_config\.weight_block_size/);
});

test('inconsistent keys', () => {
  const cases: Array<[Record<string, unknown>, RegExp[]]> = [
    [{ n_routed_experts: 10, n_group: 4 }, [/n_routed_experts \(10\)/, /not divisible by n_group \(4\)/]],
    [{ topk_group: 5, n_group: 4 }, [/topk_group \(5\) exceeds n_group \(4\)/]],
    [{ first_k_dense_replace: 4, num_hidden_layers: 3 }, [/first_k_dense_replace \(4\) exceeds num_hidden_layers \(3\)/]],
    // 8 experts in 4 groups, 2 groups kept: 4 experts to choose from.
    [{ num_experts_per_tok: 5 }, [/num_experts_per_tok \(5\)/, /kept groups/]],
    [{ index_head_dim: 96 }, [/index_head_dim \(96\)/, /power of two/]],
    [{ qk_rope_head_dim: 15 }, [/qk_rope_head_dim \(15\)/, /even/]],
    [{ qk_rope_head_dim: 128 }, [/qk_rope_head_dim \(128\) exceeds index_head_dim \(64\)/]],
    [{ rope_scaling: { type: 'linear', factor: 2, original_max_position_embeddings: 1024 } }, [/rope_scaling\.type 'linear'/, /yarn/]],
    [{ tie_word_embeddings: true }, [/tie_word_embeddings/]],
    [{ moe_layer_freq: 2 }, [/moe_layer_freq/]],
  ];
  for (const [overrides, phrases] of cases) {
    rejects(() => parseConfig(tinyConfigJson(overrides), 'd/config.json'), 'd/config.json', ...phrases);
  }
});

test('several problems at once are all listed', () => {
  const schema = rejects(
    () => parseConfig(tinyConfigJson({ hidden_size: '256', index_topk: undefined, vocab_size: -1 }), 'c.json'),
    'c.json',
    /invalid config/,
    /hidden_size/,
    /index_topk: missing/,
    /vocab_size/,
  );
  assert.equal(schema.problems.length, 3, schema.message);
  const consistency = rejects(
    () => parseConfig(tinyConfigJson({ n_routed_experts: 10, topk_group: 5, index_head_dim: 96, qk_rope_head_dim: 15 }), 'c.json'),
    'c.json',
    /invalid config/,
    /n_routed_experts/,
    /topk_group \(5\)/,
    /index_head_dim \(96\)/,
    /qk_rope_head_dim \(15\)/,
  );
  assert.ok(consistency.problems.length >= 4, consistency.message);
  for (const p of consistency.problems) assert.ok(consistency.message.includes(p));
});

test('loadConfig: file errors name the file', () => {
  const notJson = dirWith('not-json', '{"model_type": "deepseek_v32",');
  rejects(() => loadConfig(notJson), path.join(notJson, 'config.json'), /not valid JSON/);
  const missing = dirWith('missing', null);
  rejects(() => loadConfig(missing), path.join(missing, 'config.json'), /file not found/);
  const array = dirWith('array', '[1, 2, 3]');
  rejects(() => loadConfig(array), path.join(array, 'config.json'), /expected a JSON object/);
  const nul = dirWith('null', 'null');
  rejects(() => loadConfig(nul), path.join(nul, 'config.json'), /expected a JSON object/);
  const llama = dirWith('llama', JSON.stringify(tinyConfigJson({ model_type: 'llama' })));
  rejects(() => loadConfig(llama), path.join(llama, 'config.json'), /'llama'/, /deepseek_v32/);
  const noTopk = dirWith('no-topk', JSON.stringify(without('index_topk')));
  rejects(() => loadConfig(noTopk), path.join(noTopk, 'config.json'), /index_topk: missing/);
});

test('loadConfig of a good written config', () => {
  const dir = dirWith('good', JSON.stringify(tinyConfigJson({ index_topk: 16 })));
  const c = loadConfig(dir);
  assert.equal(c.indexTopk, 16);
  assert.equal(c.vocabSize, 512);
  assert.equal(c.quant, null);
});
