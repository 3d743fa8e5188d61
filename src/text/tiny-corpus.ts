/**
 * The text `dsa make-tiny` trains its tokenizer's merges on: English prose and chat phrases, code,
 * numbers, Chinese, Japanese, a few other scripts and emoji — enough for a few hundred merges that
 * make common words single tokens. Anything else still encodes, byte by byte.
 */
export const TINY_CORPUS = `Hello! How can I help you today?
Hi there. I am a small language model with random weights, so my answers are noise.
What is DeepSeek Sparse Attention? DeepSeek Sparse Attention (DSA) lets each query token attend to only a few of the earlier tokens.
A lightning indexer scores every earlier token for the query, and a top-k selection keeps the best 2048 of them.
The main attention then reads only the selected entries of the key-value cache, so long contexts cost far less.
The indexer is small: a few heads, FP8 keys and a ReLU before the weighted sum over heads.
During training the indexer first learns to imitate dense attention, then the model learns to work with sparse attention.
Please write a short story about a robot who learns to read.
Once upon a time, there was a robot who lived in a library. Every night it opened one more book.
Thank you! That was a nice story. Can you summarize it in one sentence?
Sure. The robot read one book every night until it understood the world.
The quick brown fox jumps over the lazy dog. The five boxing wizards jump quickly.
Let me think about this step by step. First, we compute the sum. Then we check the answer.
The answer is 42. The year is 2025. Pi is about 3.14159, and e is about 2.71828.
1 2 3 4 5 6 7 8 9 10 100 1000 12345 67890
def attention(query, keys, values):
    scores = query @ keys.T / math.sqrt(keys.shape[-1])
    return softmax(scores) @ values

function topk(scores: Float32Array, k: number): number[] {
  return [...scores.keys()].sort((a, b) => scores[b] - scores[a]).slice(0, k);
}

for (let i = 0; i < n; i++) { total += values[i]; }
if (x > 0 && y < 10) { console.log("ok"); } else { return null; }
{"role": "user", "content": "What is the weather like in Paris?"}
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
The weather in Paris is sunny and 18 degrees.
你好！我是一个小型语言模型。今天天气很好，我们去公园散步吧。
深度求索稀疏注意力让每个查询只关注少量的历史词元。注意力机制是大模型的核心。
我喜欢学习新的知识。谢谢你的帮助！
こんにちは。私は小さな言語モデルです。今日はいい天気ですね。ありがとうございます。
Привет! Как дела? Спасибо, хорошо.
Bonjour, comment ça va ? Très bien, merci. Où est la bibliothèque ?
Hallo, wie geht es dir? Danke, gut. Schöne Grüße aus München.
¡Hola! ¿Qué tal? Muy bien, gracias.
안녕하세요. 만나서 반갑습니다.
مرحبا بالعالم. شكرا لك.
Emoji: 😀 😂 🤖 🚀 ✨ 👍 ❤️ 🎉 🔥 🙏
Yes. No. Maybe. Of course! I don't know. It's fine. We're done. They'll see. You've got this.
question answer user assistant system model token tokens text chat message reply
`;
