/**
 * A DeepSeek-style chat template (the format of DeepSeek-V3.1 / V3.2-Exp, whose tokenizer_config
 * carries it) for models made by `dsa make-tiny`:
 *
 *   <｜begin▁of▁sentence｜>{system}<｜User｜>{query}<｜Assistant｜></think>{answer}<｜end▁of▁sentence｜>
 *
 * With `thinking: true` (chat_template_kwargs) the generation prompt opens `<think>` instead of
 * closing it; earlier answers lose their reasoning (the part before `</think>`). Tool calls and
 * outputs use DeepSeek's markers. Written as lines joined without newlines so the source can be
 * read; every tag trims its whitespace.
 */
export const DEEPSEEK_CHAT_TEMPLATE = [
  "{%- if not add_generation_prompt is defined %}{%- set add_generation_prompt = false %}{%- endif %}",
  "{%- if not thinking is defined %}{%- set thinking = false %}{%- endif %}",
  "{%- set ns = namespace(system_prompt='', is_first_sp=true, is_last_user=false, is_tool=false, is_first_call=true) %}",
  // System messages, joined, go first.
  "{%- for message in messages %}{%- if message['role'] == 'system' %}",
  "{%- if ns.is_first_sp %}{%- set ns.system_prompt = message['content'] %}{%- set ns.is_first_sp = false %}",
  "{%- else %}{%- set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}",
  "{%- endif %}{%- endfor %}",
  "{{- bos_token }}{{- ns.system_prompt }}",
  "{%- for message in messages %}",
  // User turn.
  "{%- if message['role'] == 'user' %}",
  "{%- set ns.is_tool = false %}{%- set ns.is_last_user = true %}{{- '<｜User｜>' + message['content'] }}",
  "{%- endif %}",
  // Assistant turn with tool calls.
  "{%- if message['role'] == 'assistant' and message['tool_calls'] is defined and message['tool_calls'] %}",
  "{%- if ns.is_last_user %}{{- '<｜Assistant｜></think>' }}{%- endif %}",
  "{%- set ns.is_last_user = false %}{%- set ns.is_tool = false %}",
  "{%- if message['content'] %}{{- message['content'] }}{%- endif %}",
  "{{- '<｜tool▁calls▁begin｜>' }}",
  "{%- for tool in message['tool_calls'] %}",
  "{{- '<｜tool▁call▁begin｜>' + tool['function']['name'] + '<｜tool▁sep｜>' + tool['function']['arguments'] + '<｜tool▁call▁end｜>' }}",
  "{%- endfor %}",
  "{{- '<｜tool▁calls▁end｜><｜end▁of▁sentence｜>' }}",
  // Plain assistant turn.
  "{%- elif message['role'] == 'assistant' %}",
  "{%- if ns.is_last_user %}{{- '<｜Assistant｜></think>' }}{%- endif %}",
  "{%- set ns.is_last_user = false %}",
  "{%- set content = message['content'] if message['content'] else '' %}",
  "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1] %}{%- endif %}",
  "{%- if ns.is_tool %}{{- '<｜tool▁outputs▁end｜>' }}{%- set ns.is_tool = false %}{%- endif %}",
  "{{- content + '<｜end▁of▁sentence｜>' }}",
  "{%- endif %}",
  // Tool output.
  "{%- if message['role'] == 'tool' %}",
  "{%- set ns.is_last_user = false %}",
  "{%- if not ns.is_tool %}{{- '<｜tool▁outputs▁begin｜>' }}{%- endif %}",
  "{%- set ns.is_tool = true %}",
  "{{- '<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>' }}",
  "{%- endif %}",
  "{%- endfor %}",
  "{%- if ns.is_tool %}{{- '<｜tool▁outputs▁end｜>' }}{%- endif %}",
  // After tool outputs the assistant goes on without a new turn marker (as DeepSeek-V3's template).
  "{%- if add_generation_prompt and ns.is_last_user %}",
  "{{- '<｜Assistant｜>' }}{%- if thinking %}{{- '<think>' }}{%- else %}{{- '</think>' }}{%- endif %}",
  "{%- endif %}",
].join('');
