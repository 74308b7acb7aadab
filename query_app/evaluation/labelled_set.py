"""The labelled evaluation set, built here from real media that installs from PyPI and Debian:
scikit-image's photos, sentences spoken by espeak-ng, and text drawn on frames by ffmpeg with
Debian's Noto CJK font (English and Korean). Nothing of it is committed; ``build`` makes it.

Each clip is a few scenes put back to back (so the cuts are known to the frame); a scene shows a
photo or a text card and may carry a spoken sentence. Clips come in pairs on one topic (a scene
and its distractor: the same kind of picture, speech on a neighbouring subject), so the top 5 is
not trivial. Queries describe what is seen, said or written, in English or Korean, in words of
their own (never the caption or the transcript); on-screen text queries name what the card says.
Every other query of each kind goes to the tuning half, the rest to the test half: fusion weights
are chosen on the first and reported on the second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

FPS = 25
SIZE = (480, 320)
FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc")
CARD_COLOURS = ("navy", "darkgreen", "maroon", "indigo", "darkslategray", "saddlebrown", "teal", "black")


@dataclass(frozen=True)
class SceneSpec:
    photo: str | None = None  # a scikit-image photo, or None for a text card
    text: str | None = None  # drawn on the frame (a card's text, or a caption over the photo)
    speech: str | None = None  # an English sentence spoken by espeak-ng
    seconds: float = 3.0


@dataclass(frozen=True)
class ClipSpec:
    name: str
    scenes: tuple[SceneSpec, ...]


@dataclass(frozen=True)
class LabelledQuery:
    text: str
    language: str  # en | ko
    kind: str  # spoken | visual | onscreen
    clip: str
    scene: int
    split: str = ""  # tune | test (assigned by build)

    @property
    def target(self) -> str:
        return f"{self.clip}#{self.scene}"


S = SceneSpec
CLIPS = (
    ClipSpec(
        "morning_cafe",
        (
            S("coffee", speech="I make a strong espresso every morning before work."),
            S(text="TODAY'S SPECIAL\nKIMCHI STEW 9,000 WON"),
            S("chelsea", speech="My cat sleeps on the sofa for the whole afternoon."),
        ),
    ),
    ClipSpec(
        "bakery_visit",
        (
            S("coffee", speech="The bakery sells fresh bread and croissants at dawn."),
            S(text="오늘의 메뉴\n비빔밥 팔천 원"),
            S("cat", speech="The neighbour's kitten climbed up the old oak tree."),
        ),
    ),
    ClipSpec(
        "launch_day",
        (
            S("rocket", speech="The rocket lifted off from the launch pad at noon."),
            S(text="BREAKING NEWS\nSATELLITE REACHES ORBIT"),
            S("astronaut", speech="She trained for two years before her first spacewalk."),
        ),
    ),
    ClipSpec(
        "space_museum",
        (
            S("rocket", speech="Engineers checked the fuel tanks twice before the test."),
            S(text="우주 박물관\n입장료 무료"),
            S("astronaut", speech="Visitors can try on a heavy space suit in the museum."),
        ),
    ),
    ClipSpec(
        "city_weather",
        (
            S(text="SEOUL WEATHER\nSUNNY 24°C"),
            S("stereo_motorcycle", speech="Heavy rain is falling on the quiet city streets tonight."),
            S(text="서울 날씨\n내일 비 소식"),
        ),
    ),
    ClipSpec(
        "road_trip",
        (
            S("stereo_motorcycle", speech="We rode our scooters along the coast for three days."),
            S(text="ROAD CLOSED\nDETOUR AHEAD"),
            S("camera", speech="The photographer set up his tripod on the hill."),
        ),
    ),
    ClipSpec(
        "football_night",
        (
            S(text="FINAL SCORE\nKOREA 2 JAPAN 1"),
            S("coffee", speech="The football team celebrated their victory in the stadium."),
            S(text="축구 대표팀\n결승 진출"),
        ),
    ),
    ClipSpec(
        "training_camp",
        (
            S("camera", speech="The coach filmed every practice to study the players."),
            S(text="TRAINING CAMP\nDAY 3"),
            S("chelsea", speech="A stray cat watched the runners from the fence."),
        ),
    ),
    ClipSpec(
        "concert_news",
        (
            S(text="CONCERT TONIGHT\nDOORS OPEN 7PM"),
            S("astronaut", speech="The singer thanked the crowd after the last song."),
            S(text="공연 안내\n오후 일곱 시 시작"),
        ),
    ),
    ClipSpec(
        "market_day",
        (
            S("coffee", speech="Farmers bring apples and pears to the market on Saturday."),
            S(text="FRESH FISH\nHALF PRICE"),
            S("stereo_motorcycle", speech="A delivery driver parked his motorbike near the stalls."),
        ),
    ),
)

Q = LabelledQuery
QUERIES = (
    # spoken (English speech), asked in English and in Korean
    Q("someone who drinks coffee first thing every day", "en", "spoken", "morning_cafe", 0),
    Q("매일 아침 커피를 마시는 사람", "ko", "spoken", "morning_cafe", 0),
    Q("a pet napping on the couch", "en", "spoken", "morning_cafe", 2),
    Q("소파에서 낮잠 자는 고양이", "ko", "spoken", "morning_cafe", 2),
    Q("a shop selling pastries early in the morning", "en", "spoken", "bakery_visit", 0),
    Q("새벽에 빵을 파는 가게", "ko", "spoken", "bakery_visit", 0),
    Q("a young cat up a tree", "en", "spoken", "bakery_visit", 2),
    Q("나무에 올라간 새끼 고양이", "ko", "spoken", "bakery_visit", 2),
    Q("a spacecraft leaving the ground at midday", "en", "spoken", "launch_day", 0),
    Q("발사대에서 이륙하는 로켓", "ko", "spoken", "launch_day", 0),
    Q("preparing for years to walk in space", "en", "spoken", "launch_day", 2),
    Q("우주 유영을 위한 훈련", "ko", "spoken", "launch_day", 2),
    Q("inspecting the propellant containers before a trial", "en", "spoken", "space_museum", 0),
    Q("연료 탱크를 점검하는 기술자들", "ko", "spoken", "space_museum", 0),
    Q("trying on an astronaut outfit at an exhibition", "en", "spoken", "space_museum", 2),
    Q("박물관에서 우주복을 입어 보는 방문객", "ko", "spoken", "space_museum", 2),
    Q("a stormy wet evening downtown", "en", "spoken", "city_weather", 1),
    Q("비 오는 밤의 도시 거리", "ko", "spoken", "city_weather", 1),
    Q("a long ride by the sea on small motorbikes", "en", "spoken", "road_trip", 0),
    Q("해안을 따라 스쿠터 여행", "ko", "spoken", "road_trip", 0),
    Q("a man putting a camera stand on a hilltop", "en", "spoken", "road_trip", 2),
    Q("언덕 위에 삼각대를 세우는 사진작가", "ko", "spoken", "road_trip", 2),
    Q("soccer players cheering after winning the match", "en", "spoken", "football_night", 1),
    Q("경기장에서 우승을 축하하는 축구 선수들", "ko", "spoken", "football_night", 1),
    Q("recording training sessions to analyse the team", "en", "spoken", "training_camp", 0),
    Q("연습을 촬영하는 감독", "ko", "spoken", "training_camp", 0),
    Q("an animal watching athletes from behind a fence", "en", "spoken", "training_camp", 2),
    Q("울타리에서 선수들을 지켜보는 길고양이", "ko", "spoken", "training_camp", 2),
    Q("a performer thanking the audience at the end of the show", "en", "spoken", "concert_news", 1),
    Q("공연이 끝나고 관객에게 감사하는 가수", "ko", "spoken", "concert_news", 1),
    Q("fruit growers at a weekend market", "en", "spoken", "market_day", 0),
    Q("토요일 시장에서 과일을 파는 농부", "ko", "spoken", "market_day", 0),
    Q("a courier leaving his bike next to the stands", "en", "spoken", "market_day", 2),
    Q("시장 근처에 오토바이를 세운 배달 기사", "ko", "spoken", "market_day", 2),
    # on-screen text
    Q("the kimchi stew special and its price", "en", "onscreen", "morning_cafe", 1),
    Q("김치찌개 가격", "ko", "onscreen", "morning_cafe", 1),
    Q("비빔밥 메뉴", "ko", "onscreen", "bakery_visit", 1),
    Q("a satellite reaching orbit headline", "en", "onscreen", "launch_day", 1),
    Q("우주 박물관 무료 입장", "ko", "onscreen", "space_museum", 1),
    Q("sunny weather in Seoul, 24 degrees", "en", "onscreen", "city_weather", 0),
    Q("내일 서울에 비", "ko", "onscreen", "city_weather", 2),
    Q("a road closure sign with a detour", "en", "onscreen", "road_trip", 1),
    Q("Korea beat Japan final score", "en", "onscreen", "football_night", 0),
    Q("축구 대표팀 결승", "ko", "onscreen", "football_night", 2),
    Q("third day of training camp", "en", "onscreen", "training_camp", 1),
    Q("concert doors open at 7", "en", "onscreen", "concert_news", 0),
    Q("공연 시작 시간 안내", "ko", "onscreen", "concert_news", 2),
    # Korean words with particles and compounds that the cards write otherwise
    Q("서울의 날씨 소식", "ko", "onscreen", "city_weather", 2),
    Q("박물관 입장료가 무료", "ko", "onscreen", "space_museum", 1),
    Q("대표팀이 결승에 진출", "ko", "onscreen", "football_night", 2),
    Q("내일은 비가 온대요", "ko", "onscreen", "city_weather", 2),
    Q("오늘 메뉴는 비빔밥", "ko", "onscreen", "bakery_visit", 1),
    Q("일곱 시에 공연 시작", "ko", "onscreen", "concert_news", 2),
    Q("fish sold at half price", "en", "onscreen", "market_day", 1),
    # what is seen
    Q("a cup of espresso", "en", "visual", "morning_cafe", 0),
    Q("커피 한 잔", "ko", "visual", "morning_cafe", 0),
    Q("a tabby cat", "en", "visual", "morning_cafe", 2),
    Q("고양이", "ko", "visual", "morning_cafe", 2),
    Q("a missile on a launch pad", "en", "visual", "launch_day", 0),
    Q("로켓 발사", "ko", "visual", "launch_day", 0),
    Q("a motor scooter", "en", "visual", "road_trip", 0),
    Q("스쿠터", "ko", "visual", "road_trip", 0),
    Q("a photographer with a tripod", "en", "visual", "road_trip", 2),
    Q("삼각대", "ko", "visual", "road_trip", 2),
    Q("an animal", "en", "visual", "training_camp", 2),
    Q("a vehicle", "en", "visual", "market_day", 2),
    Q("a hot drink", "en", "visual", "market_day", 0),
    Q("a cat sitting", "en", "visual", "bakery_visit", 2),
)


# About nothing in the set: a good minimum score answers these with "no good match".
NO_MATCH_QUERIES = (
    "quantum chromodynamics lecture on the blackboard",
    "a knitting pattern for wool socks",
    "고대 이집트 피라미드 건설",
    "an underwater volcano erupting",
    "주식 시장 폭락 분석",
    "a violin repair workshop",
)


def labelled_queries() -> list[LabelledQuery]:
    """Every query with its split: alternately tune and test within each kind and language."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for q in QUERIES:
        n = seen[(q.kind, q.language)] = seen.get((q.kind, q.language), -1) + 1
        out.append(LabelledQuery(q.text, q.language, q.kind, q.clip, q.scene, "tune" if n % 2 == 0 else "test"))
    return out


@dataclass
class BuiltSet:
    folder: Path
    clips: dict[str, Path]
    cuts: dict[str, list[float]] = field(default_factory=dict)  # clip -> annotated cut times (s)
    sentences: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # clip -> (scene, sentence)
    queries: list[LabelledQuery] = field(default_factory=list)

    def save(self) -> Path:
        manifest = self.folder / "labels.json"
        payload = {
            "clips": {name: str(path) for name, path in self.clips.items()},
            "cuts": self.cuts,
            "sentences": self.sentences,
            "queries": [asdict(q) for q in self.queries],
        }
        manifest.write_text(json.dumps(payload, ensure_ascii=False, indent=1))
        # the queries alone, in the labels format `tving eval LABELS` and the search_quality asset read
        (self.folder / "labels.jsonl").write_text(
            "".join(
                json.dumps({"query": q.text, "relevant": [f"{q.clip}.mp4#{q.scene}"], "language": q.language,
                            "kind": q.kind, "split": q.split}, ensure_ascii=False) + "\n"
                for q in self.queries
            ),
            encoding="utf-8",
        )  # fmt: skip
        return manifest

    @classmethod
    def load(cls, folder: Path) -> BuiltSet:
        data = json.loads((folder / "labels.json").read_text())
        return cls(
            folder,
            {k: Path(v) for k, v in data["clips"].items()},
            data["cuts"],
            {k: [tuple(x) for x in v] for k, v in data["sentences"].items()},
            [LabelledQuery(**q) for q in data["queries"]],
        )


def build(folder: Path) -> BuiltSet:
    """Make every clip (reused when already there) and the labels."""
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / ".work"
    work.mkdir(exist_ok=True)
    built = BuiltSet(folder, {}, queries=labelled_queries())
    for clip in CLIPS:
        out = folder / f"{clip.name}.mp4"
        parts, cut, t = [], [], 0.0
        sentences = []
        for i, scene in enumerate(clip.scenes):
            audio = None
            seconds = scene.seconds
            if scene.speech:
                audio = work / f"{clip.name}_{i}.wav"
                _run("espeak-ng", "-s", "150", "-w", str(audio), scene.speech)
                seconds = max(seconds, _wav_seconds(audio) + 0.8)
                sentences.append((i, scene.speech))
            seconds = round(seconds * FPS) / FPS
            part = work / f"{clip.name}_{i}.mp4"
            if not out.exists():
                _scene_clip(
                    scene, seconds, part, audio, work, CARD_COLOURS[(len(built.clips) * 3 + i) % len(CARD_COLOURS)]
                )
            parts.append(part)
            t += seconds
            cut.append(round(t, 3))
        if not out.exists():
            _concat(parts, out)
        built.clips[clip.name] = out
        built.cuts[clip.name] = cut[:-1]
        built.sentences[clip.name] = sentences
    shutil.rmtree(work, ignore_errors=True)
    built.save()
    return built


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as handle:
        return handle.getnframes() / handle.getframerate()


def _photo(name: str, work: Path) -> Path:
    import numpy as np
    from PIL import Image
    from skimage import data

    path = work / f"{name}.png"
    if not path.exists():
        image = getattr(data, name)()
        image = image[0] if isinstance(image, tuple) else image
        Image.fromarray(np.asarray(image)).convert("RGB").resize(SIZE).save(path)
    return path


def _scene_clip(scene: SceneSpec, seconds: float, out: Path, audio: Path | None, work: Path, colour: str) -> None:
    frames = round(seconds * FPS)
    args = ["ffmpeg", "-y", "-loglevel", "error"]
    if scene.photo:
        args += ["-loop", "1", "-i", str(_photo(scene.photo, work))]
        video = (f"scale={SIZE[0] * 2}:{SIZE[1] * 2},zoompan=z='min(zoom+0.0008,1.1)':d={frames}"
                 f":s={SIZE[0]}x{SIZE[1]}:fps={FPS}")  # fmt: skip
    else:
        args += ["-f", "lavfi", "-i", f"color=c={colour}:s={SIZE[0]}x{SIZE[1]}:r={FPS}"]
        video = "null"
    if scene.text:
        text_file = out.with_suffix(".txt")
        text_file.write_text(scene.text, encoding="utf-8")
        video += (f",drawtext=fontfile={FONT}:textfile={text_file}:fontcolor=white:fontsize=34"
                  ":x=(w-text_w)/2:y=(h-text_h)/2:line_spacing=14")  # fmt: skip
    video += ",format=yuv420p"
    # every part gets an audio track (silence where nobody speaks): the parts then join losslessly
    if audio is not None:
        args += ["-i", str(audio)]
    else:
        args += ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono"]
    args += ["-af", "apad", "-c:a", "aac", "-ar", "16000", "-ac", "1"]
    args += ["-vf", video, "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS)]
    args += ["-t", f"{frames / FPS:.3f}", str(out)]
    _run(*args)


def _concat(parts: list[Path], out: Path) -> None:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    _run("ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out))
    listing.unlink()
