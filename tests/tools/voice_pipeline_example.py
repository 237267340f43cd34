"""Example: a voice pipeline (Pipecat / LiveKit Agents style) driving an interview.

The pipeline does its own speech-to-text and text-to-speech; the engine conducts the interview.
The loop (docs/voice.md):
  - interviewer text arrives as `interviewer_delta` pieces (streamed follow-ups) or a whole
    `interviewer` event: start TTS at the first complete sentence, don't wait for the rest;
  - while the candidate speaks, send `transcript_hint` with the partial transcript (a barge-in when
    the interviewer is still talking), and `interrupt` when your VAD hears them talk over the TTS;
  - when your endpointing says the candidate finished, send `answer {text, audio_duration_s, words,
    turn, seq}` (words: [{word, start, end}] from your STT), and keep `last_seq` for `resume`.
Here the STT and TTS are stand-ins (canned answers, printed sentences) so the loop runs anywhere.

Usage: python voice_pipeline_example.py http://127.0.0.1:8080
Prints what it does, and the final report as JSON on the last line.
"""

import json
import re
import sys
import urllib.request

from websockets.sync.client import connect

ANSWERS = [
    "I would use a hash map from each word to its count, then sort the entries by count.",
    "Um, I would profile first. Then add an index on the columns the query filters by.",
    "I would cache hot reads with a short TTL and invalidate on writes.",
]


def words_for(text, start=0.3, per_word=0.35, pause_after=4, pause=2.5):
    """What a streaming STT gives: word timings (here with one long thinking pause)."""
    out, t = [], start
    for i, w in enumerate(text.split()):
        out.append({"word": w, "start": round(t, 2), "end": round(t + per_word - 0.05, 2)})
        t += per_word + (pause if i == pause_after else 0.0)
    return out, round(t + 0.3, 2)


def first_sentence(text):
    m = re.search(r"(.+?[.!?])(\s|$)", text)
    return m.group(1) if m else None


def main():
    base = sys.argv[1].rstrip("/")
    body = json.dumps({"candidate": {"id": "pipeline-1", "name": "Pat"}, "role": "Backend Engineer",
                       "questions": 3}).encode()
    req = urllib.request.Request(base + "/api/interviews", data=body,
                                 headers={"Content-Type": "application/json"})
    created = json.load(urllib.request.urlopen(req))
    url = base.replace("http", "ws", 1) + created["ws_url"] + "?token=" + created["token"]
    last_seq, answered, speaking = 0, 0, {}
    with connect(url) as ws:
        for raw in ws:
            if isinstance(raw, bytes):
                continue  # interviewer audio is only sent to voice interviews (voice: true)
            ev = json.loads(raw)
            if not ev.get("ephemeral") and ev.get("seq"):
                last_seq = ev["seq"]
            kind = ev["type"]
            if kind == "interviewer_delta":
                buf = speaking.setdefault(ev["turn"], "") + ev["delta"]
                speaking[ev["turn"]] = buf
                s = first_sentence(buf)
                if s and not buf.endswith("\x00"):
                    print("tts: start speaking", repr(s))
                    speaking[ev["turn"]] = buf + "\x00"
            elif kind == "interviewer":
                if ev["turn"] not in speaking:
                    print("tts: start speaking", repr(first_sentence(ev["text"]) or ev["text"]))
                speaking.pop(ev["turn"], None)
                if ev["kind"] in ("question", "follow_up"):
                    text = ANSWERS[answered % len(ANSWERS)]
                    answered += 1
                    # The candidate starts talking while the TTS is still playing: barge-in.
                    ws.send(json.dumps({"type": "transcript_hint", "text": text.split()[0]}))
                    ws.send(json.dumps({"type": "interrupt"}))
                    words, duration = words_for(text)
                    ws.send(json.dumps({"type": "answer", "text": text, "audio_duration_s": duration,
                                        "words": words, "turn": ev["turn"], "seq": ev["seq"]}))
                    print("stt: answered turn", ev["turn"], "with", len(words), "words")
            elif kind == "evaluation":
                print("evaluation", ev["turn"], ev["score"])
            elif kind == "error":
                print("error", ev["code"], ev["message"])
            elif kind == "report":
                print("last_seq", last_seq)
                print(json.dumps(ev["report"]))
                return


if __name__ == "__main__":
    main()
