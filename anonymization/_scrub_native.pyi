from anonymization._scrub import Scrubber as Scrubber
